"""Reports: EDA of the reviews, and the small HTML/plot helpers every report uses."""
