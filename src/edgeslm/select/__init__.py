"""`edgeslm select`: choose, for one device profile and budget, the recipe and thread count whose
bundle meets the budget with the best accuracy; predict first, compress and measure only what may win."""
