"""Datasets, stores and manifests: everything that reads a binarised dataset (data_bins/NAME)."""
