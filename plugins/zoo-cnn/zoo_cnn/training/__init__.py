"""Training scripts for the weight variants this plugin ships (need scikit-learn)."""
