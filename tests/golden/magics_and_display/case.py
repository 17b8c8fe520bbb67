# %% tags=["task:load"]
# %matplotlib inline
# !pip install tabulate
import json

# %time data = json.loads('{"a": [1, 2, 3]}')
display(data)
data

# %% tags=["task:sum"]
total = sum(data["a"])
print(total)
