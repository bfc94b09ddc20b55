"""Loading side: read and validate the CSVs, compute the selections, publish them."""
