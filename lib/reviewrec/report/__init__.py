"""Reports: the EDA of the reviews (eda), the run's front page (index), and the small HTML and
plot writer every report uses (html)."""
