"""The bundled multi-response reward model (MR^2): backbone + value head, N responses in one forward pass.

Modules: ``packing`` (layout, masks, positions), ``media_inputs`` (images/videos -> vision tensors, Qwen),
``molmo2_media`` (Molmo2's own processors without torchvision),
``backbone`` (loading, separator token, LoRA), ``value_head``, ``reward_model`` (the nn.Module),
``checkpoint`` (release and mr2bench layouts), ``adapter`` (mr2: / mr2-single: for evaluate-model),
``train`` (N-way training), ``grpo`` (a TRL reward function), ``tiny`` (random-weight test models).
Heavy imports (torch, transformers) happen when a submodule is imported, never here.
"""
