"""Human names of a dataset's classes, for figure titles (labels stay integers elsewhere)."""

from __future__ import annotations

#: torchvision's ``FashionMNIST.classes``, in label order.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Datasets whose labels are not their own names (MNIST's label 3 is the digit 3).
CLASS_NAMES: dict[str, tuple[str, ...]] = {"fashion-mnist": FASHION_MNIST_CLASSES}


def class_name(dataset: str | None, label: int) -> str:
    """The name of class ``label`` of ``dataset``; the number itself where classes have
    no other name (MNIST digits, an unknown dataset, a label out of range)."""
    names = CLASS_NAMES.get(str(dataset))
    label = int(label)
    if names is None or not 0 <= label < len(names):
        return str(label)
    return names[label]
