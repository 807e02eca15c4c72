"""Entity extraction as IOB2 token classification: data formats, training and inference."""
