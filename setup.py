from setuptools import setup

setup(
    name="recbole-genni",
    version="0.1.0",
    description="GenNi: model-generated negative samples for RecBole sequential recommenders",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=["recbole_genni", "recbole_genni.data", "recbole_genni.model", "recbole_genni.negatives",
              "recbole_genni.properties"],
    package_dir={"recbole_genni.properties": "properties"},
    package_data={"recbole_genni.properties": ["*.yaml", "model/*.yaml"]},
    py_modules=[],
    entry_points={"console_scripts": [
        "recbole-genni=recbole_genni.cli:console_main",
        "recbole-genni-recommend=recbole_genni.recommend:console_main",
        "recbole-genni-hyper=recbole_genni.hyper:console_main",
        "recbole-genni-runs=recbole_genni.runs:console_main",
    ]},
    install_requires=[
        "recbole==1.2.1",
        "torch>=2.0",
        "numpy>=1.26,<3",  # 1.26 and 2.x both pass the tests (RecBole's removed numpy aliases: compat.py)
        "pandas>=2.2,<3",  # pandas 3's copy-on-write makes RecBole's inplace fillna on a column a silent no-op
        "scipy",
        "pyyaml",
        "setuptools<81",  # ray 2.6.3 (RecBole's dependency) imports pkg_resources
        "tensorboard",
        "hyperopt",  # RecBole's HyperTuning (recbole-genni-hyper)
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "pytest-xdist", "matplotlib", "ruff==0.17.5"],
        "bench": ["matplotlib"],
    },
)
