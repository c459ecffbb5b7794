"""Attention heatmaps drawn with matplotlib (the optional [plot] extra)."""

from minigrad.viz._format import show_char

__all__ = ["plot_attention"]


def plot_attention(maps, chars, path, batch=0, title=None):
    """Draw a grid of heatmaps (rows = layers, columns = heads) of `maps` (as returned by
    `attention_maps`, or a list of (B, nh, T, T) arrays) to a PNG at `path`, with the
    characters `chars` as tick labels (query positions down, key positions across).
    Returns the path. Needs matplotlib (pip install minigrad[plot])."""
    plt = _pyplot()
    weights = [m["weights"] if isinstance(m, dict) else m for m in maps]
    n_layers, n_heads = len(weights), weights[0].shape[1]
    T = weights[0].shape[-1]
    labels = [show_char(c) for c in chars][:T]
    size = 1.0 + 0.12 * T
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(size * n_heads, size * n_layers),
                             squeeze=False)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer][batch, head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xticklabels(labels, fontsize=6)
            ax.set_yticklabels(labels, fontsize=6)
            ax.tick_params(length=0)
            if head == 0:
                ax.set_ylabel("query (attends from)", fontsize=7)
            if layer == n_layers - 1:
                ax.set_xlabel("key (attends to)", fontsize=7)
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


