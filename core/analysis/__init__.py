"""Degradation analysis: noise, blur, JPEG, contrast and exposure estimators and their spatial maps."""
