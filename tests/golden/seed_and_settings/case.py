# %% tags=["setup"]
import warnings

import numpy as np
import pandas as pd

# %% tags=["task:configure"]
np.random.seed(0)
pd.set_option("display.max_columns", 5)
warnings.filterwarnings("ignore")
size = 3

# %% tags=["task:draw"]
sample = np.random.rand(size)

# %% tags=["task:draw_again"]
again = np.random.rand(size)
