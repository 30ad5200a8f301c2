"""The models-from-code entry point of a logged liftwise model: MLflow copies this file
into the model and runs it on load (no pickled Python object in the artefact)."""

from mlflow.models import set_model

from liftwise.registry.pyfunc import LiftwiseUpliftModel

set_model(LiftwiseUpliftModel())
