"""CTC decoding (greedy and prefix beam search) for sign2gloss generation."""
