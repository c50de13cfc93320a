"""An app whose map layer names a colour_by attribute without a palette, for the geo app's tests."""
