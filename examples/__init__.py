"""Programs that use the worker from the outside, as a customer's code would."""
