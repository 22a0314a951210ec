"""Money as the account books it: fees in the quote currency, funding of perpetuals."""
