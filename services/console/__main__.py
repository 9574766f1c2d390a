from services.console.app import SERVICE, create_app
from shared.service import run_service

run_service(SERVICE,
            "Churnwatch console: the CSMs' web workspace.",
            create_app)
