"""YAML defaults of recbole-genni, installed as ``recbole_genni.properties``."""
