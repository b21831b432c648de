"""The workflows: what a user runs, built on the model, the prediction path and the metrics.

- :mod:`.training`: joint training of the streams on one fold (data and class weights, state
  and resume, the loop, validation and selection at the end, logging);
- :mod:`.selection`: the choices made on validation videos (epoch, fusion weights,
  post-processing; stored as :class:`~twostream_das.choices.Selection`);
- :mod:`.evaluation`: ``evaluate``, a run's selected checkpoint on its fold's test videos;
- :mod:`.prediction`: ``predict``, feature files or raw videos to labels, segments and plots;
- :mod:`.cv`: ``cv``, every fold (and seed) of a dataset, resumable, with a summary;
- :mod:`.demo`: ``demo``, the whole pipeline on generated data in about a minute.

Nothing below this package imports it: the model (``multi_stream``), the prediction path
(``inference``), post-processing and metrics do not know about runs or folders.
"""
