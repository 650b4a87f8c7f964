"""The REST control plane: a Flask application factory and one blueprint per resource."""
