import subprocess
import sys

import pytest

from lavis.common.registry import Registry, RegistryError, registry


def make_registry():
    # An empty package so lazy imports find nothing to import.
    return Registry({"model": "lavis.common", "fusion": "lavis.common"})


def test_register_and_get_with_lavis_spelling():
    reg = make_registry()

    @reg.register_model("my_model")
    class MyModel:
        pass

    assert reg.get_model_class("my_model") is MyModel
    assert reg.get("model", "my_model") is MyModel
    assert "my_model" in reg.names("model")


def test_duplicate_name_names_both_classes():
    reg = make_registry()

    @reg.register("fusion", "gca")
    class First:
        pass

    with pytest.raises(RegistryError) as err:

        @reg.register("fusion", "gca")
        class Second:
            pass

    assert "First" in str(err.value) and "Second" in str(err.value)


def test_unknown_name_lists_registered_ones():
    reg = make_registry()
    reg.register("model", "alpha")(type("Alpha", (), {}))
    reg.register("model", "beta")(type("Beta", (), {}))
    with pytest.raises(RegistryError, match=r"unknown model 'gamma'.*\['alpha', 'beta'\]"):
        reg.get("model", "gamma")


def test_unknown_kind_is_an_error():
    with pytest.raises(RegistryError, match="unknown registry kind"):
        make_registry().get("optimizer", "adamw")


def test_global_registry_has_every_kind():
    assert set(registry.kinds) == {
        "model",
        "builder",
        "processor",
        "task",
        "metric_family",
        "runner",
        "strategy",
        "hook",
        "fusion",
    }


def test_import_lavis_stays_light():
    code = "import sys, lavis; heavy = [m for m in ('torch', 'transformers', 'av') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
