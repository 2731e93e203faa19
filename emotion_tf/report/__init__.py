"""Pictures of a run's results: training curves, confusion matrix, ROC curve, the most confident
mistakes, a self-contained report.html, and a TensorBoard preview of augmentation."""
