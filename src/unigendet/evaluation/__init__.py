"""The field's evaluation protocols on top of `unigendet.metrics`."""
