"""What is learned: encoders, augmentations, SSL objectives, classifier, training, registry.

`models` never imports `drift` or `service`.
"""
