# %% tags=["task:start"]
x = 1
counts = {"a": 0}

# %% tags=["task:bump"]
x += 1
counts["a"] += 1

# %% tags=["task:use"]
y = x * 10
z = counts["a"]
