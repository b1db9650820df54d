"""The denoising core, pure numpy/scipy: ``bradley_terry`` (vectorised fit + bootstrap), ``feedback_arc``
(exact min-weight FAS), ``graph``, ``annotators`` (reliability weights), ``ensemble`` (the pipeline),
``sampling`` (4-response items), ``metrics``, ``simulate`` (planted-truth arenas), ``baselines``."""
