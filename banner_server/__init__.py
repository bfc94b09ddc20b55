"""The banner server: serves one banner per request from the current quarter's selection."""
