pytest_plugins = [
    "chromaline.common.testing.rabbitmq",
    "chromaline.common.testing.postgres",
    "chromaline.common.testing.s3",
]
