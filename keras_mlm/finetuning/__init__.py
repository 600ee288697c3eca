"""Fine-tuning: shared recipe plumbing, task data readers and alignment (classification, NER, QA)."""
