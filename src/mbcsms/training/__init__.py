"""Build-time training of the understanding model: the labelled examples, training, evaluation.

Needs the ``train`` extra (scikit-learn, scipy); nothing here is imported when the bot runs.
"""
