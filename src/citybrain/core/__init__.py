"""The kernel: knows no domain and never imports an app."""
