"""The example's three environments: preprocessing <- ml_training <- visualization."""

import flyte_deploy as fd

prep_env = fd.TaskEnvironment(
    name="preprocessing",
    resources=fd.Resources(cpu=1, memory="1Gi"),
    env_vars={"LOG_LEVEL": "info"},
)
ml_env = fd.TaskEnvironment(
    name="ml_training",
    depends_on=[prep_env],
    resources=fd.Resources(cpu=2, memory="4Gi"),
    secrets=[fd.Secret(key="wandb-api-key", as_env_var="WANDB_API_KEY")],
)
viz_env = fd.TaskEnvironment(name="visualization", depends_on=[ml_env], resources=fd.Resources(cpu=1, memory="2Gi"))
