"""Interactive explorers (ipywidgets) with a static render for the printed book.

Display an explorer as the last expression of a cell (``AttackExplorer(pipe)``): JupyterLab and
Colab show the live widget, the rendered book its picture.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from satnb.attacks import gradient_attack
from satnb.core.config import AttackSettings
from satnb.knn.features import as_images, extract_features
from satnb.report.plots import PAGE_IN, vote_histogram


class AttackExplorer:
    """Pick a test image, a model and eps; see the attacked image, its nearest library images and the votes."""

    def __init__(self, pipeline, models: list[str] | None = None, n_neighbours: int = 8):
        self.pipe = pipeline
        self.models = models or list(pipeline.entries) or ["amdim", "sup"]
        self.n_neighbours = n_neighbours

    def compute(self, model: str, index: int, eps: float) -> dict:
        """Attack test image `index` of `model` with the gradient attack at radius eps (step eps/6)."""
        pipe, data = self.pipe, self.pipe.data
        if not 0 <= index < len(data.y_test):
            raise ValueError(f"index {index} is outside the test set (0..{len(data.y_test) - 1})")
        net, knn = pipe.entry(model).model, pipe.library(model)
        x = as_images(data.x_test[index:index + 1])
        y = torch.as_tensor(data.y_test[index:index + 1])
        steps = pipe.profile.protocol.small.steps
        adv = x if eps <= 0 else gradient_attack(net, knn, AttackSettings(eps, eps / 6, steps), pipe.guide_size(model),
                                                 seed=pipe.profile.seed)(x, y)
        f_x, f_adv = extract_features(net, x), extract_features(net, adv)
        _, nb = knn.search(f_adv, self.n_neighbours)
        return {"x": x[0], "adv": adv[0], "label": int(y[0]), "votes_clean": knn.vote(f_x)[0].numpy(),
                "votes_adv": knn.vote(f_adv)[0].numpy(), "neighbours": pipe.library_images(nb[0])}

    def render(self, model: str | None = None, index: int = 0, eps: float | None = None) -> plt.Figure:
        """A static figure of one state of the explorer (the default state in the book)."""
        model = model or self.models[0]
        eps = self.pipe.profile.protocol.small.eps if eps is None else eps
        r = self.compute(model, index, eps)
        classes = self.pipe.data.classes
        half = max(1, (self.n_neighbours + 1) // 2)
        cols = 2 + half
        # the page's width (plots.PAGE_IN): pictures on top, the two vote histograms under them
        fig = plt.figure(figsize=(PAGE_IN, 2 * PAGE_IN / cols + 2.4))
        grid = fig.add_gridspec(3, cols, height_ratios=[1, 1, 1.6])
        for j, (img, title) in enumerate(((r["x"], f"clean: {classes[r['label']]}"),
                                          (r["adv"], f"attacked, eps={eps:.3f}"))):
            ax = fig.add_subplot(grid[:2, j])
            ax.imshow(img.permute(1, 2, 0).numpy().clip(0, 1), interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        for i, img in enumerate(r["neighbours"]):
            ax = fig.add_subplot(grid[i // half, 2 + i % half])
            ax.imshow(img, interpolation="nearest")
            ax.axis("off")
            if i == 0:
                ax.set_title("nearest library images (attacked)", fontsize=8, loc="left")
        split = cols // 2
        vote_histogram(r["votes_clean"], classes, "kNN votes, clean", fig.add_subplot(grid[2, :split]))
        vote_histogram(r["votes_adv"], classes, "kNN votes, attacked", fig.add_subplot(grid[2, split:]))
        fig.suptitle(f"model: {model}", fontsize=10)
        fig.tight_layout()
        return fig

    def widget(self):
        """The live explorer: dropdown for the model, sliders for the image and eps."""
        import ipywidgets as w

        model = w.Dropdown(options=self.models, description="model")
        index = w.IntSlider(0, 0, len(self.pipe.data.y_test) - 1, description="test image")
        eps = w.FloatSlider(value=self.pipe.profile.protocol.small.eps, min=0.0, max=0.12, step=0.005,
                            description="eps", readout_format=".3f")

        def show(model, index, eps):
            self.render(model, index, eps)
            plt.show()

        out = w.interactive_output(show, {"model": model, "index": index, "eps": eps})
        return w.VBox([w.HBox([model, index, eps]), out])

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget where a kernel and a widget manager run (JupyterLab, Colab), its static picture elsewhere.

        One output carries both: front ends that render widgets prefer the widget view; the book's
        HTML build is told (``nb_mime_priority_overrides`` in ``_config.yml``) to use the picture.
        """
        import base64
        import io

        fig = self.render()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
        plt.close(fig)
        bundle = {"text/plain": f"AttackExplorer(models={self.models}) (static picture: default state)",
                  "image/png": base64.b64encode(buf.getvalue()).decode()}
        try:
            bundle = {**self.widget()._repr_mimebundle_(), **bundle}
        except ImportError:  # no ipywidgets: the picture alone
            pass
        return bundle


