"""Named, parameterised SQL, one module per table family. Schema lives in ``migrations/``."""
