"""anywidget front ends: one Python class and one ESM file each."""
