"""Adapters for the published baselines of the MR^2 paper's table (arXiv 2604.10966), one module per family.

Each module follows its authors' own inference code or model card, names that source in its docstring and
states what it assumes; ``mr2bench.adapters.MODEL_KINDS`` registers one short kind per family
(``skywork-vl:``, ``ixc-reward:``, ``r1-reward:``, ``mm-rlhf-reward:``, ``llava-critic:``,
``unified-reward:``). Open VLM judges and proprietary API judges run through the generic ``judge:`` and
``api:`` kinds with the presets of ``api_presets``.
"""
