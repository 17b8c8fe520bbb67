"""nb2pipe: turn a tagged Jupyter notebook into a tested Ploomber pipeline.

The public API is ``nb2pipe.convert.convert`` and ``nb2pipe.convert.check``;
both return ``nb2pipe.model.Result`` values.  Heavy imports stay inside the
functions that need them so that ``nb2pipe --help`` starts fast.
"""

__version__ = "0.1.0"
