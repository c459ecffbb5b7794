"""Attention heatmaps drawn with matplotlib (the optional [plot] extra)."""

from minigrad.viz._format import show_char

__all__ = ["plot_attention"]


def plot_attention(maps, chars, path, batch=0, title=None, key_chars=None, layer_titles=None,
                   query_axis="query (attends from)", key_axis="key (attends to)"):
    """Draw a grid of heatmaps (rows = layers, columns = heads) of `maps` (as returned by
    `attention_maps`, or a list of (B, nh, T, S) arrays) to a PNG at `path`, with the
    characters `chars` as the query tick labels (down) and `key_chars` (default: `chars`)
    as the key tick labels (across): for cross-attention, the target down and the source
    across. `layer_titles` names the rows (default "layer 0", ...; e.g. the maps' "label"s).
    Returns the path. Needs matplotlib (pip install minigrad[plot])."""
    plt = _pyplot()
    weights = [m["weights"] if isinstance(m, dict) else m for m in maps]
    names = layer_titles or [f"layer {i}" for i in range(len(maps))]
    n_layers, n_heads = len(weights), weights[0].shape[1]
    T, S = weights[0].shape[-2:]
    rows = [show_char(c) for c in chars][:T]
    cols = [show_char(c) for c in (chars if key_chars is None else key_chars)][:S]
    fig, axes = plt.subplots(n_layers, n_heads, squeeze=False,
                             figsize=((1.0 + 0.12 * S) * n_heads, (1.0 + 0.12 * T) * n_layers))
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer][batch, head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"{names[layer]}, head {head}", fontsize=8)
            ax.set_xticks(range(S))
            ax.set_yticks(range(T))
            ax.set_xticklabels(cols, fontsize=6)
            ax.set_yticklabels(rows, fontsize=6)
            ax.tick_params(length=0)
            if head == 0:
                ax.set_ylabel(query_axis, fontsize=7)
            if layer == n_layers - 1:
                ax.set_xlabel(key_axis, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("attention plots need matplotlib: pip install 'minigrad[plot]'") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


