from services.console.app import SERVICE, create_app
from shared.service import serve
from shared.settings import get_settings

settings = get_settings()
serve(create_app(settings), SERVICE, settings.console_port, settings)
