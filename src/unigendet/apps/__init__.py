"""Product surfaces: `unigendet detect`, `unigendet generate`, `unigendet serve`.
Inference only: nothing here imports the training package."""
