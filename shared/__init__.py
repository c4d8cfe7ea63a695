"""Code shared by the submit and worker functions."""
