"""Metrics as fairseq scorers: WER, BLEU-1..4, ROUGE-L."""
