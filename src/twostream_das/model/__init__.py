"""The model: one stream's networks and losses, and the composition of the configured streams.

    block.py        the conv-attention block (the one block of encoder and decoder)
    embeddings.py   the diffusion step embedding
    encoder.py      features (B, D, T) -> logits (B, C, T) + conditioning features
    masking.py      frame condition masks: full / boundary / random action / zero
    decoder.py      (x_t, t, masked cond) -> x0 logits (B, C, T)
    losses.py       masked CE, smoothing, boundary BCE -> a named breakdown
    stream.py       one modality: encoder + masking + decoder + diffusion; loss(), sample()
    multi_stream.py   one stream per ``dataset.streams`` entry; L = sum_s L_s; sampling with the
                    strategy the caller gives (prediction stacks the streams)
    standardize.py  per-channel feature standardisation

The model imports the kernels (:mod:`twostream_das.kernels`) and the diffusion process
(:mod:`twostream_das.diffusion`); nothing about prediction, runs or folders.
"""
