"""Product surfaces: `unigendet detect`, `unigendet generate`, `unigendet serve`, `unigendet smoke`.
Inference only: nothing here imports the training package."""
