"""Interactive widgets for otkit: ipywidgets controls with plotly FigureWidgets."""
