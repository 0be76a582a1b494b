"""Understanding a patient's message, in named stages (each its own module):

- :mod:`.text`: normalising (case, accents, punctuation; emoji read as words) and word stems;
- :mod:`.typos`: the typo index, each unknown word to the nearest known one;
- :mod:`.keywords`: the keyword tables, one builder for the understander and ``translations check``;
- :mod:`.features` and :mod:`.model`: the learned crisis and topic classifiers;
- :mod:`.understander`: the stages together, and how rules and model decide.
"""

from .understander import MAX_TOKENS, Understander, Understanding, Understood, decide_topic

__all__ = ["MAX_TOKENS", "Understander", "Understanding", "Understood", "decide_topic"]
