# %% tags=["setup"]
import pandas as pd

# %% tags=["task:load"]
df = pd.DataFrame({"a": [1.0, None, 3.0], "b": ["x", "y", "z"]})
seen = []

# %% tags=["task:clean"]
# peers lose this: the task only mutates df, it defines nothing
df.dropna(inplace=True)
df["c"] = df["a"] * 2
seen.append(len(df))

# %% tags=["task:report"]
total = df["c"].sum() + len(seen)
