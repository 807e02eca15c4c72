"""Retrieval of posts by meaning: a fine-tuned bi-encoder and a FAISS index per day."""
