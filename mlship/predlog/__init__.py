"""The prediction log (schema `mlship.predlog/v1`): its model, writer and readers."""
