# %% tags=["setup"]
import pandas as pd

# %% tags=["task:load"]
train = pd.DataFrame({"age": [10, None, 30]})
test = pd.DataFrame({"age": [None, 20.0]})

# %% tags=["task:fill"]
for frame in [train, test]:
    frame["age"] = frame["age"].fillna(0)

# %% tags=["task:combine"]
both = pd.concat([train, test], ignore_index=True)
