from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="sms-lavis",
    version="0.1.0",
    description="Audio-visual video moment retrieval with LLMs (SMS: Sight meets Sound), LAVIS-style",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # configs/ ships inside the package as lavis/configs, so an installed (non-editable) copy
    # finds the model presets, dataset defaults and experiment YAMLs from any directory.
    packages=find_packages(include=["lavis", "lavis.*", "mr_data", "mr_data.*"]) + ["lavis.configs"],
    package_dir={"lavis.configs": "configs"},
    package_data={"lavis.configs": ["**/*.yaml", "**/*.json"]},
    install_requires=requirements(),
    extras_require={
        "deepspeed": ["deepspeed>=0.15"],
        "decord": ["decord>=0.6"],  # optional video backend (x86 wheels only)
        "wandb": ["wandb>=0.18"],
        "tensorboard": ["tensorboard>=2.15"],
        "app": ["gradio>=6,<7"],  # python -m lavis.app (its browser test drives Chromium via playwright)
        "dev": ["pytest>=8", "ruff>=0.6", "playwright>=1.40"],
    },
    entry_points={
        "console_scripts": [
            "lavis-train=lavis.train:main",
            "lavis-evaluate=lavis.evaluate:main",
            "lavis-mr-eval=lavis.tasks.mr_eval:main",
            "lavis-export=lavis.export:main",
            "lavis-app=lavis.app.cli:main",
        ]
    },
)
