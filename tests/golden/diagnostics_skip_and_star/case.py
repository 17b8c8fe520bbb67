# %% tags=["task:load"]
from os.path import *
base = "data"

# %% tags=["skip"]
preview = base.upper()

# %% tags=["task:use"]
shown = preview.lower()
later = undefined_name + 1

# %% tags=["taks:typo"]
after = 1
