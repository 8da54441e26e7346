"""TinyBERT-style data augmentation that keeps every SQuAD answer exact.

Words are swapped for likely substitutes (masked-LM predictions, word-vector neighbours or
WordNet synonyms); words inside answers, stopwords and non-alphabetic tokens never change,
and answer offsets are recomputed. Import the pieces from their modules: this package
init stays light so that `distill.config` can import `distill.config.augment` cheaply.
"""
