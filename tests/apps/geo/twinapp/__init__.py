"""An app that declares a layer id another app already declares, for the geo app's tests."""
