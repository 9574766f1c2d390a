from services.scoring.app import SERVICE, create_app
from shared.service import run_service

run_service(SERVICE,
            "Churnwatch scoring: per-account health on event time; publishes scores and risk signals.",
            create_app)
