"""Checked exercises for the course notebooks: ``check()``, ``hint()``, ``solution()``.

For learners
============
::

    from dpcourse.exercises import load, progress
    ex = load("02")              # the exercises of lesson 02
    ex.clip.show()               # the question again
    my_clipped = ...             # your code here
    ex.clip.check(my_clipped)    # feedback; True when correct
    ex.clip.hint()               # ex.clip.hint(2) for the next hint
    ex.clip.solution()           # the worked solution
    progress()                   # exercises passed per lesson (a table)

``check`` never raises and never stops the notebook: an unanswered ``...`` gets "Not
attempted yet", a wrong answer gets "Incorrect:" and what exactly is wrong, a right one
"Correct!" and is recorded in a local file (``~/.dpcourse/progress.json``, or the path in
``$DPCOURSE_PROGRESS_FILE``). Nothing is sent anywhere. ``reset_progress()`` forgets it.

For lesson authors
==================
1. **One module per lesson**, ``dpcourse/exercises/lessonNN.py`` (``NN`` = the notebook
   number), defining ``EXERCISES``, the list of its exercises, each with a distinct
   ``name``. Listing an exercise there registers it: ``load("NN")`` stamps it with the
   lesson number (no exercise repeats it) and finds it, and the tests cover it with no
   further work. The lesson's title is its notebook's heading. ``lesson00.py`` is a
   complete example. Keep importing the module fast
   (no data loading or TensorFlow at import): expected values, cases and wrong answers
   may be given as zero-argument functions, which run only when needed.

2. **Kinds of exercise** (all keyword-only; common arguments ``name, title, prompt,
   hints, solution_code, answer_names, wrong_answers, explanation``):

   - :class:`NumericExercise` ``(expected=lambda: ..., rtol, atol, mistakes=[...])``: a
     number or array, compared with ``numpy.allclose``. ``mistakes`` turn known wrong
     turns into specific advice, e.g. ``off_by_factor(256, "Your value {answer} is 256
     times too large — did you forget to divide by the batch size?")`` or
     ``Mistake(lambda answer, expected: ..., "...")``. With several answer names,
     ``expected`` returns a tuple with one value per name.
   - :class:`FunctionExercise` ``(reference=f, cases=[(args...), ...])``: the learner
     passes a function; it is run on each case (on copies of the arguments) and compared
     with the reference. A function whose body is still ``...`` counts as not attempted,
     and exceptions it raises are reported with the input that caused them.
   - :class:`PredicateExercise` ``(predicate=lambda *answers: (ok, message))``: anything
     judged by a property rather than a value (``is_placeholder(answer)`` recognises an
     unanswered ``...``).
   - :class:`ChoiceExercise` ``(name, title, hints, answer_name,
     question=MultipleChoice(prompt, options, correct, explanations))``: one
     multiple-choice question. ``explanations`` must say why each option is right or
     wrong; the learner sees the explanation of every wrong choice.
   - :class:`Quiz` ``(title, questions=[MultipleChoice(...), ...])``: the
     end-of-lesson quiz, named ``quiz`` (``ex.quiz``), answered in the notebook variable
     ``quiz_answers`` as ``{1: "b", 2: "a", 3: ["a", "c"]}``.

   ``ChoiceExercise`` and ``Quiz`` derive ``prompt``, ``solution_code`` and
   ``wrong_answers`` from their questions (``ChoiceExercise`` also takes explicit
   ``wrong_answers``, e.g. to plant a multi-option answer).

3. **solution_code** is Python source that, run on its own in a fresh namespace, assigns
   every name in ``answer_names``. It is self-contained: it imports what it uses
   (``import numpy as np``, ``from dpcourse.dpsgd import ...``) and relies on no
   variable from the notebook, seeds any randomness, prints nothing and runs in a few
   seconds. It is what ``solution()`` shows, what the instructor edition pastes into the
   answer cell, and what the tests execute and check.

4. **wrong_answers** plants at least one wrong answer that ``check`` must reject: a
   list, or a zero-argument function returning one. With one answer name each entry is
   the answer itself; with several, a tuple with one value per name. Plant the mistakes
   learners really make (a percentage instead of a fraction, a forgotten division, a
   function that clips the whole batch instead of each row), so that the tests also
   exercise the specific feedback.

5. **Notebook cells.** Once per notebook::

       from dpcourse.exercises import load
       ex = load("02")

   Then one answer cell per exercise, tagged ``exercise:02.clip`` in the cell metadata
   (``"metadata": {"tags": ["exercise:02.clip"]}``), whose placeholder variables are
   named exactly like the exercise's ``answer_names``::

       my_clipped = ...   # your code here
       ex.clip.check(my_clipped)

   For a function exercise the placeholder is a function whose body is ``...``::

       def clip_gradients(per_example_grads, l2_norm_clip):
           ...   # your code here

       ex.clip_fn.check(clip_gradients)

   and for the quiz::

       ex.quiz.ask()
       quiz_answers = {1: ..., 2: ..., 3: ...}
       ex.quiz.check(quiz_answers)

   The instructor edition is built from the tags: for a cell tagged ``exercise:02.clip``,
   ``from_tag("exercise:02.clip").instructor_cell(cell_source)`` replaces the
   placeholder statement(s) (an assignment of a value containing ``...`` to an answer
   name, or the stub ``def`` of one) with ``solution_code`` and keeps every other line,
   so the ``check`` call then prints "Correct!". Hints and solutions stay available in
   both editions through ``ex.clip.hint()`` and ``ex.clip.solution()``.
"""

from .checks import (
    FunctionExercise,
    Mistake,
    NumericExercise,
    PredicateExercise,
    off_by_factor,
    output_mistake,
)
from .choice import ChoiceExercise, MultipleChoice, Quiz
from .core import Exercise, Result, is_placeholder
from .registry import (
    LessonExercises,
    all_exercises,
    from_tag,
    lessons,
    load,
    progress,
)
from .tracking import ProgressWarning, progress_file, reset_progress

__all__ = [
    "ChoiceExercise",
    "Exercise",
    "FunctionExercise",
    "LessonExercises",
    "Mistake",
    "MultipleChoice",
    "NumericExercise",
    "PredicateExercise",
    "ProgressWarning",
    "Quiz",
    "Result",
    "all_exercises",
    "from_tag",
    "is_placeholder",
    "lessons",
    "load",
    "off_by_factor",
    "output_mistake",
    "progress",
    "progress_file",
    "reset_progress",
]
